import './base.css';
import './switcher.css';
import './sharing.css';
import './training.css';
import './endpoints.css';
